"""The fast path (chapter 9): an update compiled with torch.compile, without a second copy.

`compile_agent` wraps `Agent.losses`, which computes every loss of an update exactly as the
readable eager code states it (world model, dreams, λ-returns, actor, critic, replay value
loss), with `torch.compile`. The compiler traces that code once, fuses its thousands of small
tensor operations into a few kernels, and derives the backward pass for them; `train_step` then
applies the gradients as before. Nothing is restated: a reader who has read the eager code has
read what runs.

Compiling takes minutes on a CPU the first time. PyTorch caches the compiled kernels on disk
(in `/tmp/torchinductor_<user>`, or wherever `TORCHINDUCTOR_CACHE_DIR` points), so a resumed
run, or a second run of the same config on the same machine, compiles much faster. If compiling
fails (no C++ compiler, an unsupported operation), training warns once and goes on eagerly.

On a GPU the compiled step also runs as a CUDA graph (`mode="reduce-overhead"`): the whole
update is launched at once instead of kernel by kernel.
"""

import warnings

import torch


class CompiledLosses:
    """`Agent.losses` under torch.compile, falling back to the eager function if compiling
    fails. Called like the function it wraps: batch → (actor loss, other losses, metrics)."""

    def __init__(self, eager, cuda: bool):
        self.eager, self.cuda, self.failed = eager, cuda, False
        self.compiled = torch.compile(eager, mode="reduce-overhead" if cuda else None)

    def __call__(self, batch):
        if not self.failed:
            try:
                if self.cuda:
                    # CUDA graphs reuse their output memory at the next call: the metrics the
                    # training loop keeps until it logs are copied out.
                    torch.compiler.cudagraph_mark_step_begin()
                    actor_loss, other_loss, metrics = self.compiled(batch)
                    return actor_loss, other_loss, {k: v.clone() for k, v in metrics.items()}
                return self.compiled(batch)
            except Exception as error:  # compiling can fail in many ways; training must not
                self.failed = True
                warnings.warn(f"torch.compile could not compile the training step "
                              f"({type(error).__name__}: {str(error).splitlines()[0][:200]}); "
                              f"training goes on eagerly, which is slower but computes the "
                              f"same. Set train.compile: false to skip the attempt.",
                              stacklevel=2)
        return self.eager(batch)


def compile_agent(agent) -> None:
    """Make `agent.train_step` use a compiled `agent.losses` (in place)."""
    agent.losses = CompiledLosses(agent.losses, agent.device.type == "cuda")
