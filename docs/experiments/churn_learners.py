"""Experiment (issue 17, part 3): can a supervised learner on full-history RFM
features, trained on calendar cuts inside the calibration period, beat BG/NBD
out of time? Not part of the product; kept so that the figures in
docs/model.md ("Supervised learners on lifetime RFM") can be reproduced:

    .venv/bin/python docs/experiments/churn_learners.py retail [DATA_DIR]
    .venv/bin/python docs/experiments/churn_learners.py cdnow [DATA_DIR]

Features at a cut c (each member's whole history before c, not the last 50
events): log silence, purchase days, age, 30-minute visits, purchase days in
the last 30 days, events, span, mean gap between purchase days, silence over
the mean gap; optionally BG/NBD's logit P(no purchase in w) fitted at c; and
log w. Labels: no event in [c, c + w), w = min(holdout, cutoff - c). Scored
at the evaluation cutoff with w = the holdout length.
"""
import sys
from pathlib import Path

import numpy as np
import torch
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from models.datasets import online_retail, cdnow, by_member
from models.evaluation.runs import _day
from models.evaluation.bgnbd import BGNBD
from models.encoding import DAY
from models.metrics import auc
which = sys.argv[1]
data = Path(sys.argv[2] if len(sys.argv) > 2 else "../shared/data")
if which == "retail":
    start, cut, end = _day(2010,12,1), _day(2011,3,1), _day(2011,6,1)
    ev = [e for e in online_retail(data) if e.ts < end]; step=7
else:
    start, cut, end = _day(1997,1,1), _day(1997,10,1), _day(1998,7,1)
    ev = cdnow(data); step=14
H = (end-cut)/DAY
h = by_member(ev)
def feats(hist_before, c, w):
    """per member features at time c; hist_before: dict m -> events before c"""
    ms = sorted(hist_before)
    rows=[]; x=[];tx=[];T=[]
    for m in ms:
        e = hist_before[m]
        days = sorted({int(z.ts//DAY) for z in e})
        visits = len({int(z.ts//1800) for z in e})
        sil = (c - e[-1].ts)/DAY; age=(c-e[0].ts)/DAY
        recent = len({int(z.ts//DAY) for z in e if z.ts > c-30*DAY})
        gaps = np.diff(days) if len(days)>1 else np.array([age])
        rows.append([np.log1p(sil), np.log1p(len(days)), np.log1p(age), np.log1p(visits), np.log1p(recent),
                     np.log1p(len(e)), np.log1p((days[-1]-days[0])), np.log1p(np.mean(gaps)), np.log1p(sil/ (np.mean(gaps)+1))])
        x.append(len(days)-1); tx.append((days[-1]-days[0])/7); T.append((c/DAY-1-days[0])/7)
    return ms, np.array(rows), np.array(x,float), np.array(tx), np.array(T)
def label(ms, c, w):
    return np.array([float(not any(c<=z.ts<c+w*DAY for z in h[m])) for m in ms])
def before(c): 
    b={m:[z for z in v if z.ts<c] for m,v in h.items()}; return {m:v for m,v in b.items() if v}
cal = before(cut)
ms,F,x,tx,T = feats(cal, cut, H)
bg = BGNBD.fit(x,tx,T)
y = label(ms, cut, H)
pbg = bg.p_no_purchase(x,tx,T,H/7)
print("test members", len(ms), "bgnbd auc", round(auc(y,pbg),4), "bg params", bg)
# training cuts
X=[];Y=[]
cuts = np.arange(start + 28*DAY, cut - 14*DAY, step*DAY)
for c in cuts:
    w = min(H, (cut-c)/DAY)
    b = before(c)
    m2,F2,x2,tx2,T2 = feats(b, c, w)
    bg2 = BGNBD.fit(x2,tx2,T2)
    p2 = np.clip(bg2.p_no_purchase(x2,tx2,T2,w/7),1e-6,1-1e-6)
    X.append(np.c_[F2, np.log(p2/(1-p2)), np.full(len(m2), np.log(w))]); Y.append(label(m2,c,w))
X=np.concatenate(X); Y=np.concatenate(Y)
pt = np.clip(pbg,1e-6,1-1e-6)
Xt = np.c_[F, np.log(pt/(1-pt)), np.full(len(ms), np.log(H))]
print("train rows", len(Y), "rate", Y.mean())
def fit_eval(cols, hidden=0, name=""):
    mu = X[:,cols].mean(0); sd = X[:,cols].std(0)+1e-9
    A = torch.tensor((X[:,cols]-mu)/sd, dtype=torch.float32); B=torch.tensor(Y,dtype=torch.float32)
    At = torch.tensor((Xt[:,cols]-mu)/sd, dtype=torch.float32)
    torch.manual_seed(0)
    net = torch.nn.Linear(len(cols),1) if not hidden else torch.nn.Sequential(torch.nn.Linear(len(cols),hidden), torch.nn.GELU(), torch.nn.Linear(hidden,1))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2, weight_decay=1e-4)
    for i in range(600):
        opt.zero_grad(); l = torch.nn.functional.binary_cross_entropy_with_logits(net(A).squeeze(-1), B); l.backward(); opt.step()
    p = torch.sigmoid(net(At).squeeze(-1)).detach().numpy()
    bins = np.minimum((p*10).astype(int),9); ece = sum(abs(y[bins==k].mean()-p[bins==k].mean())*(bins==k).sum() for k in range(10) if (bins==k).any())/len(p)
    print(f"{name:30s} auc {auc(y,p):.4f} brier {np.mean((p-y)**2):.4f} ece {ece:.4f} prec@.8 {y[p>=.8].mean() if (p>=.8).any() else float('nan'):.3f} n {(p>=.8).sum()}")
nF = F.shape[1]
fit_eval(list(range(nF))+[nF+1], 0, "LR rfm")
fit_eval(list(range(nF))+[nF+1], 32, "MLP rfm")
fit_eval([nF, nF+1], 0, "LR bgnbd logit")
fit_eval(list(range(nF+2)), 0, "LR rfm+bgnbd")
fit_eval(list(range(nF+2)), 32, "MLP rfm+bgnbd")
print("bgnbd brier", np.mean((pbg-y)**2))
