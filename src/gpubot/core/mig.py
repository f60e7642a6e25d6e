"""MIG cards and their slices: which claims exclude each other, and what CUDA_VISIBLE_DEVICES takes.

A card in MIG mode is shared by slice (`0.2`); claiming the whole card takes all its slices. So a card's
claim and its slices' claims exclude each other: the store enforces it when it writes (see
`ClaimStore.create_claims`), and these rules say it for the views and the claim rules' early refusals.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gpubot.core.models import Claim, Gpu


def card_uuid(gpu: Gpu) -> str:
    """The UUID of the card a GPU is on: its own for a card, its parent's for a slice."""
    return gpu.parent_uuid if gpu.parent_uuid is not None else gpu.uuid


def conflicting_claim(gpu: Gpu, live: Iterable[Claim]) -> Claim | None:
    """The active claim that keeps `gpu` from being claimed: its own, its card's, or one of its slices'."""
    related = None
    for claim in live:
        if claim.host != gpu.host:
            continue
        if claim.gpu_uuid == gpu.uuid:
            return claim
        if related is None and (
            (gpu.parent_uuid is not None and claim.gpu_uuid == gpu.parent_uuid)
            or (gpu.parent_uuid is None and claim.parent_gpu_uuid == gpu.uuid)
        ):
            related = claim
    return related


def overlap(gpus: Sequence[Gpu]) -> tuple[Gpu, Gpu] | None:
    """A card and one of its slices both in `gpus` (card first), if any: one request cannot name both."""
    cards = {gpu.uuid: gpu for gpu in gpus if gpu.parent_uuid is None}
    for gpu in gpus:
        if gpu.parent_uuid is not None and gpu.parent_uuid in cards:
            return cards[gpu.parent_uuid], gpu
    return None


def mig_cards(gpus: Iterable[Gpu]) -> frozenset[str]:
    """The UUIDs of the cards that have slices listed: the cards in MIG mode."""
    return frozenset(gpu.parent_uuid for gpu in gpus if gpu.parent_uuid is not None)


@dataclass(frozen=True)
class CudaDevices:
    """What `CUDA_VISIBLE_DEVICES` takes for a set of claims.

    Attributes:
        value: e.g. `0,2` (indices, in PCI bus order) or `MIG-…` UUIDs where MIG is involved.
        by_uuid: the value names devices by UUID, so no `CUDA_DEVICE_ORDER` is needed.
        whole_mig_cards: labels of MIG cards claimed whole: their value lists every slice, and a CUDA
            process uses one MIG device only, so the reply says so.
    """

    value: str
    by_uuid: bool = False
    whole_mig_cards: tuple[str, ...] = ()


def cuda_devices(claims: Sequence[Claim], gpus: Sequence[Gpu]) -> CudaDevices:
    """The `CUDA_VISIBLE_DEVICES` value that puts `claims` to use.

    Plain cards are named by index, as nvidia-smi numbers them. Once a MIG slice or card is among them, every
    device is named by UUID (CUDA takes `GPU-…` and `MIG-…` UUIDs alike): a slice by its `MIG-…` UUID, a whole
    MIG card by the UUIDs of all its slices (from `gpus`, the host's GPUs).
    """
    slices: dict[str, list[Gpu]] = {}
    for gpu in sorted((gpu for gpu in gpus if gpu.parent_uuid is not None), key=lambda g: g.mig_index or 0):
        slices.setdefault(gpu.parent_uuid or "", []).append(gpu)
    by_uuid = any(claim.gpu_mig_index is not None or claim.gpu_uuid in slices for claim in claims)
    if not by_uuid:
        return CudaDevices(",".join(str(claim.gpu_index) for claim in claims))
    names: list[str] = []
    whole: list[str] = []
    for claim in claims:
        if claim.gpu_uuid in slices:
            whole.append(claim.label)
            names.extend(gpu.uuid for gpu in slices[claim.gpu_uuid])
        else:
            names.append(claim.gpu_uuid)
    return CudaDevices(",".join(names), by_uuid=True, whole_mig_cards=tuple(whole))
