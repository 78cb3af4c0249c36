"""How far one Adam step from the paramagnetic start moves the replica networks' logits, as
a function of the outer layers' offset c (the bias -c of the k outer layers at the start).

Adam moves each weight by about its learning rate whatever the gradient's scale; the output
weights a0 multiply the outermost layer's output, about z - k c at the start, so one step
should move the logits by an amount growing with k c. This measures it: from the start at
``--beta``, ``--steps`` Adam steps (lr ``--lr``, batch ``--batch``) on the variational free
energy, then the root mean square change of every logit over a fixed batch of spins drawn
from the start, for each (architecture, offset). One JSON line per case.

    python benchmarks/replica_step_size.py [--N 50] [--seed 1] [--beta 0.1]
"""

from __future__ import annotations

import argparse
import json
import tempfile

import torch

from arnn_gen.codegen.emit import load_module, write_module
from arnn_gen.learn.train import reinforce_loss
from arnn_gen.pipeline import lower

#: (architecture, k, outer offsets c) measured; None: the module's default.
CASES = (
    ("SK_RS", 0, (None,)),
    ("SK_1RSB", 1, (6.0, 2.0, None)),
    ("SK_2RSB", 2, (6.0, 2.0, 1.0, 0.0, None)),
)


def logit_change(module, offset, args) -> float:
    """RMS change of the logits after ``args.steps`` Adam steps from the start."""
    torch.manual_seed(args.seed)
    model = module.Model(beta=args.beta)
    if offset is not None:
        with torch.no_grad():
            for r in range(1, model.K + 1):
                getattr(model, f"b{r}").copy_(-offset * model.later)
    probe = model.sample(args.batch, generator=torch.Generator().manual_seed(args.seed))
    with torch.no_grad():
        before = model(probe)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    for _ in range(args.steps):
        x, log_q = model.sample_with_log_prob(args.batch)
        loss, _ = reinforce_loss(model, x, args.beta, log_q)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        after = model(probe)
    return float((after - before).pow(2).mean().sqrt())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--N", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1, help="the SK instance and the draws")
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as folder:
        for architecture, k, offsets in CASES:
            variant = "rs" if k == 0 else "krsb"
            stages = lower("sk", variant=variant, k=k, N=args.N, seed=args.seed, beta=args.beta)
            module = load_module(write_module(stages.ir, stages.source, stages.hamiltonian, folder))
            default = float(getattr(module, "OUTER_LAYER_OFFSET", 0.0))
            for offset in offsets:
                change = logit_change(module, offset, args)
                c = default if offset is None else offset
                print(json.dumps({"architecture": architecture, "k": k, "offset": c,
                                  "default": offset is None, "k_c": k * c,
                                  "rms_logit_change": change, **vars(args)}))  # fmt: skip


if __name__ == "__main__":
    main()
