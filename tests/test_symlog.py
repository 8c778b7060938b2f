import numpy as np
import torch

from naturaldreamer.distributions import symexp, symlog


def test_symlog_matches_numpy():
    x = np.linspace(-1e4, 1e4, 1001)
    expected = np.sign(x) * np.log(1.0 + np.abs(x))
    got = symlog(torch.tensor(x, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_symexp_inverts_symlog():
    x = torch.linspace(-1e6, 1e6, 2001, dtype=torch.float64)
    torch.testing.assert_close(symexp(symlog(x)), x, rtol=1e-10, atol=1e-8)
    y = torch.linspace(-15, 15, 301, dtype=torch.float64)
    torch.testing.assert_close(symlog(symexp(y)), y, rtol=1e-10, atol=1e-10)


def test_symlog_is_identity_like_near_zero():
    x = torch.tensor([1e-6, -1e-6], dtype=torch.float64)
    torch.testing.assert_close(symlog(x), x, rtol=1e-5, atol=0.0)
