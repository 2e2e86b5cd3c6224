"""BG/NBD (Fader, Hardie & Lee, 2005), fitted by maximum likelihood in the same run.

Per customer: x repeat transactions (purchase days after the first), t_x the
time of the last one and T the time of the end of calibration, both from the
first purchase. Parameters r, alpha (gamma purchase rates) and a, b (beta
dropout probability) are fitted on the calibration data alone, in log space
with L-BFGS (torch autograd, double precision).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class BGNBD:
    r: float
    alpha: float
    a: float
    b: float

    @staticmethod
    def _log_likelihood(params: torch.Tensor, x, t_x, T) -> torch.Tensor:
        r, alpha, a, b = torch.exp(params)
        lg = torch.lgamma
        a1 = lg(r + x) - lg(r) + r * torch.log(alpha)
        a2 = lg(a + b) + lg(b + x) - lg(b) - lg(a + b + x)
        a3 = -(r + x) * torch.log(alpha + T)
        a4 = torch.where(x > 0, torch.log(a) - torch.log(b + x - 1 + (x == 0))
                         - (r + x) * torch.log(alpha + t_x), torch.full_like(x, -torch.inf))
        return a1 + a2 + torch.logaddexp(a3, a4)

    @classmethod
    def fit(cls, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> "BGNBD":
        tx = [torch.as_tensor(v, dtype=torch.float64) for v in (x, t_x, T)]
        params = torch.zeros(4, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([params], lr=1.0, max_iter=500, tolerance_grad=1e-10,
                                tolerance_change=1e-14, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = -cls._log_likelihood(params, *tx).mean()
            loss.backward()
            return loss
        for _ in range(5):
            opt.step(closure)
        r, alpha, a, b = (float(v) for v in torch.exp(params.detach()))
        return cls(r, alpha, a, b)

    def p_alive(self, x, t_x, T) -> np.ndarray:
        x, t_x, T = (np.asarray(v, dtype=np.float64) for v in (x, t_x, T))
        ratio = np.where(x > 0, self.a / (self.b + np.maximum(x, 1) - 1)
                         * ((self.alpha + T) / (self.alpha + t_x)) ** (self.r + x), 0.0)
        return 1.0 / (1.0 + ratio)

    def p_no_purchase(self, x, t_x, T, t: float) -> np.ndarray:
        """P(no transaction in (T, T + t]) = (1 - P(alive)) + P(alive) ((a+T)/(a+T+t))^(r+x)."""
        x, T = np.asarray(x, dtype=np.float64), np.asarray(T, dtype=np.float64)
        alive = self.p_alive(x, t_x, T)
        return (1 - alive) + alive * ((self.alpha + T) / (self.alpha + T + t)) ** (self.r + x)

    def expected_purchases(self, x, t_x, T, t: float) -> np.ndarray:
        """E[transactions in (T, T + t] | x, t_x, T] (equation 10 of the paper)."""
        x, t_x, T = (np.asarray(v, dtype=np.float64) for v in (x, t_x, T))
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        z = t / (alpha + T + t)
        hyp = hyp2f1(r + x, b + x, a + b + x - 1, z)
        head = (a + b + x - 1) / (a - 1)
        body = 1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp
        return head * body * self.p_alive(x, t_x, T)


def hyp2f1(a, b, c, z, terms: int = 2000, tol: float = 1e-14) -> np.ndarray:
    """Gauss hypergeometric series 2F1(a, b; c; z) for 0 <= z < 1, elementwise."""
    a, b, c, z = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (a, b, c, z)))
    term = np.ones_like(z)
    total = np.ones_like(z)
    for j in range(terms):
        term = term * (a + j) * (b + j) / ((c + j) * (j + 1)) * z
        total = total + term
        if np.all(np.abs(term) <= tol * np.abs(total)):
            break
    return total
