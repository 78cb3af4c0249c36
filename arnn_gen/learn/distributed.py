"""Data-parallel variational training: one model, G processes, one batch split between them.

``torchrun --standalone --nproc-per-node G -m arnn_gen train MODULE.py ... --distributed``
starts G processes (ranks); :func:`data_parallel` joins them into one process group (gloo on
the CPU, nccl with rank r on ``cuda:LOCAL_RANK``) and :class:`DataParallel` is what
:func:`arnn_gen.learn.train.train` needs of it. At every step (docs/physics.md section 5):

* rank r draws b = B / G samples x_r ~ Q from its own generator (B, the batch, must be
  divisible by G); every rank holds the same parameters (broadcast from rank 0 at the start,
  then moved by the same summed gradient);
* the B values L = log Q + beta H of all ranks are gathered (B numbers): the REINFORCE
  baseline is their mean, and the step's free-energy mean, spread and ESS are those of the
  global batch;
* rank r's surrogate loss is sum_{b in r} (L_b - mean L) log Q(x_b) / B, so that the sum over
  the ranks of their gradients, all-reduced after ``backward``, is the single-process
  gradient of the union of the samples.

The estimate after every beta and the final one draw eval_samples samples in all, split
over the ranks, and gather them. Seeding: rank 0's generator is seeded with the seed
itself, so that G = 1 gives the numbers of a single-process run; rank r >= 1 takes
:func:`rank_seed` (seed, r), 64 bits of a sha256, the same on every machine.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Iterator

import torch
import torch.distributed as dist

from arnn_gen.errors import ArnnGenError
from arnn_gen.learn.observables import Estimates, estimates_from

__all__ = ["DataParallel", "data_parallel", "rank_seed", "generator_state", "shares"]

#: The variables torchrun sets for every process it starts.
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")

# Note [Import torch.distributed.nn first]: torch.distributed.nn.functional takes
# ``group.WORLD`` as the default argument of its functions when it is imported, and Adam
# imports it (through torch._dynamo). Imported while the process group exists, it keeps
# that group alive after destroy_process_group: the gloo worker threads then outlive it,
# and one that frees a collective's tensor while the interpreter shuts down aborts the
# process ("terminate called without an active exception", torch 2.13). Imported before
# the group exists, it holds None, and destroy_process_group joins the workers.


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank ``rank``'s generator: ``seed`` itself on rank 0, else the first 64
    bits (little-endian) of sha256("arnn-gen rank {seed} {rank}")."""
    if rank == 0:
        return seed
    digest = hashlib.sha256(f"arnn-gen rank {seed} {rank}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def shares(total: int, world_size: int) -> tuple[int, ...]:
    """How ``total`` samples split over the ranks: total // G each, one more for the first
    total % G ranks."""
    base, extra = divmod(total, world_size)
    return tuple(base + (rank < extra) for rank in range(world_size))


def generator_state(payload: dict, rank: int, world_size: int, where) -> torch.Tensor:
    """Rank ``rank``'s generator state in a checkpoint written by G = ``world_size``
    processes: a data-parallel checkpoint holds every rank's state ("generators"), a
    single-process one its own ("generator"); another number of processes is refused."""
    states = payload.get("generators")
    recorded = 1 if states is None else len(states)
    if recorded != world_size:
        how = (
            "without --distributed"
            if recorded == 1
            else f"with torchrun --nproc-per-node {recorded} ... --distributed"
        )
        raise ArnnGenError(
            f"{where} was trained by {recorded} process(es), not {world_size}: its random "
            f"streams continue only {how}"
        )
    return payload["generator"] if states is None else states[rank]


class DataParallel:
    """The ranks of one data-parallel training, in the default process group.

    ``device``: this rank's device (``cuda:LOCAL_RANK`` with nccl); every tensor a method
    takes or returns lives there. :func:`data_parallel` makes the group; a caller who makes
    it imports torch.distributed.nn first (Note [Import torch.distributed.nn first]).
    """

    def __init__(self, device="cpu"):
        if not (dist.is_available() and dist.is_initialized()):
            raise ArnnGenError("data-parallel training needs an initialised process group")
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        self.device = torch.device(device)

    @property
    def is_writer(self) -> bool:
        """Rank 0 writes the run folder, draws the progress bar and prints."""
        return self.rank == 0

    def share(self, total: int, name: str = "the batch") -> int:
        """This rank's part of ``total`` samples, which must split evenly."""
        if total % self.world_size:
            raise ArnnGenError(
                f"{name} ({total}) must be divisible by the number of processes "
                f"({self.world_size}) in data-parallel training"
            )
        return total // self.world_size

    def generator(self, seed: int) -> torch.Generator:
        """This rank's generator on its device, seeded with :func:`rank_seed`."""
        return torch.Generator(device=self.device).manual_seed(rank_seed(seed, self.rank))

    def gather(self, values: torch.Tensor, counts: tuple[int, ...] | None = None) -> torch.Tensor:
        """Every rank's ``values`` [b_r, ...] concatenated in rank order, [sum b_r, ...], on
        every rank. ``counts``: the b_r of all ranks (default: all the same as this one's)."""
        counts = counts or (len(values),) * self.world_size
        size = max(counts)
        padded = values.new_zeros((size, *values.shape[1:]))  # all_gather needs equal sizes
        padded[: len(values)] = values
        parts = [torch.empty_like(padded) for _ in range(self.world_size)]
        dist.all_gather(parts, padded)
        return torch.cat([part[:count] for part, count in zip(parts, counts, strict=True)])

    @torch.no_grad()
    def broadcast_parameters(self, model: torch.nn.Module) -> None:
        """Rank 0's parameters on every rank (a random start draws from each process's own
        global generator)."""
        for parameter in model.parameters():
            dist.broadcast(parameter.data, src=0)

    @torch.no_grad()
    def sum_gradients(self, model: torch.nn.Module) -> None:
        """Replace each trainable parameter's gradient by its sum over the ranks, in one
        all-reduce per dtype (parameters without a gradient are left without one)."""
        by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
        for parameter in model.parameters():
            if parameter.requires_grad and parameter.grad is not None:
                by_dtype.setdefault(parameter.grad.dtype, []).append(parameter.grad)
        for grads in by_dtype.values():
            flat = torch.cat([grad.reshape(-1) for grad in grads])  # [sum of sizes]
            dist.all_reduce(flat, op=dist.ReduceOp.SUM)
            for grad, part in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
                grad.copy_(part.view_as(grad))

    def generator_states(self, generator: torch.Generator) -> list[torch.Tensor]:
        """Every rank's generator state (uint8 on the CPU), in rank order, on every rank."""
        state = generator.get_state().to(self.device)  # [bytes]
        return [part.cpu().clone() for part in self.gather(state[None])]  # own storages

    def on_writer(self, action: Callable[[], object]) -> None:
        """``action()`` on rank 0 alone (preparing the run folder). When it fails, rank 0
        raises its error and the others an ArnnGenError, so that none waits for a rank that
        has left."""
        failure = None
        if self.is_writer:
            try:
                action()
            except Exception as error:
                failure = error
        failed = torch.tensor([failure is not None], dtype=torch.uint8, device=self.device)
        dist.broadcast(failed, src=0)
        if failure is not None:
            raise failure
        if failed.item():
            raise ArnnGenError("rank 0 failed to prepare the run; it says why")

    @torch.no_grad()
    def sample(self, model, samples: int, generator: torch.Generator) -> torch.Tensor:
        """``samples`` configurations [S, N] (float64) drawn by all ranks together, S / G
        each, in rank order (sent as int8: +-1 is exact)."""
        counts = shares(samples, self.world_size)
        if counts[self.rank]:
            x = model.sample(counts[self.rank], generator=generator).to(torch.int8)  # [b, N]
        else:  # more ranks than samples
            x = torch.zeros(0, model.N, dtype=torch.int8, device=self.device)
        return self.gather(x, counts).to(torch.float64)

    @torch.no_grad()
    def estimate(
        self, model, *, beta: float, samples: int, batch_size: int, generator: torch.Generator
    ) -> Estimates:
        """:func:`arnn_gen.learn.observables.estimate` on ``samples`` samples drawn by all
        ranks together: each draws its share, ``batch_size`` at a time, and the samples, log Q
        and H of all are gathered (identical on every rank)."""
        counts = shares(samples, self.world_size)
        xs, log_qs, energies = [], [], []
        remaining = counts[self.rank]
        while remaining > 0:  # as estimate() draws, so that G = 1 gives its numbers
            count = min(batch_size, remaining)
            x = model.sample(count, generator=generator)  # [b, N]
            xs.append(x.to(torch.int8))
            log_qs.append(model.log_prob(x).to(torch.float64))  # [b]
            energies.append(model.energy(x).to(torch.float64))  # [b]
            remaining -= count
        if not xs:  # more ranks than samples
            xs.append(torch.zeros(0, model.N, dtype=torch.int8, device=self.device))
            log_qs.append(torch.zeros(0, dtype=torch.float64, device=self.device))
            energies.append(torch.zeros(0, dtype=torch.float64, device=self.device))
        x, log_q, energy = (
            self.gather(torch.cat(parts), counts) for parts in (xs, log_qs, energies)
        )
        return estimates_from(x.to(torch.float64), log_q, energy, beta)


@contextlib.contextmanager
def data_parallel(device: str) -> Iterator[DataParallel]:
    """Join the processes torchrun started (``init_process_group`` from its environment):
    gloo on the CPU; nccl on ``cuda:LOCAL_RANK`` when ``device`` is "cuda". The process
    group is destroyed on the way out, after a barrier (not after a failure of one rank
    alone, whose peers torchrun ends). Within, an ArnnGenError on a rank other than 0 ends
    that process with exit status 1 and no message: every rank meets the same checks with
    the same numbers, and rank 0 says why in one line."""
    missing = [name for name in TORCHRUN_VARIABLES if name not in os.environ]
    if missing:
        raise ArnnGenError(
            f"--distributed needs the environment torchrun sets ({', '.join(missing)} missing): "
            "run torchrun --standalone --nproc-per-node G -m arnn_gen train ... --distributed"
        )
    try:
        local_rank = int(os.environ["LOCAL_RANK"])
    except ValueError:
        raise ArnnGenError(
            f"LOCAL_RANK must be an integer, got {os.environ['LOCAL_RANK']!r}"
        ) from None
    import torch.distributed.nn  # noqa: F401  (Note [Import torch.distributed.nn first])

    if torch.device(device).type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise ArnnGenError(
                f"LOCAL_RANK {local_rank} has no GPU: this machine has "
                f"{torch.cuda.device_count()}; start at most that many processes"
            )
        rank_device = torch.device("cuda", local_rank)
        torch.cuda.set_device(rank_device)
        dist.init_process_group("nccl", init_method="env://", device_id=rank_device)
    else:
        rank_device = torch.device("cpu")
        dist.init_process_group("gloo", init_method="env://")
    parallel = DataParallel(rank_device)
    together = False  # whether every rank leaves at this point
    try:
        yield parallel
        together = True
    except ArnnGenError:
        together = True  # every rank meets it at the same point
        if not parallel.is_writer:
            raise SystemExit(1) from None
        raise
    finally:
        if together:
            dist.barrier()  # no rank leaves while another still talks to it
            dist.destroy_process_group()
        elif rank_device.type == "cpu":  # gloo lets one rank go alone; nccl's destroy would
            dist.destroy_process_group()  # wait for the others (torchrun ends them)
