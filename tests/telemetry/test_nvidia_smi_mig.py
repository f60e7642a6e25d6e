"""MIG through nvidia-smi: slices from the XML, their UUIDs and profiles from `nvidia-smi -L`."""

from __future__ import annotations

from pathlib import Path

from gpubot.telemetry.nvidia_smi import NvidiaSmiTelemetry, parse_mig_listing, parse_nvidia_smi_xml

CAPTURE = Path(__file__).resolve().parents[1] / "data" / "nvidia-smi" / "telegraf__a100-sxm4-v12.xml"
CARD = "GPU-513536b6-7d19-9063-b049-1e69664bb298"
SLICE_UUIDS = [f"MIG-2f1b3c4d-5e6f-5a7b-8c9d-0e1f2a3b4c{n:02d}" for n in range(4)]
# What `nvidia-smi -L` prints for that card (the format of drivers 470 and newer), with a second card after
# it that is not in MIG mode. The capture's slices have 14 SMs and 19968 MiB each: 1g.20gb on an 80 GB A100.
LISTING = (
    f"GPU 0: NVIDIA A100-SXM4-80GB (UUID: {CARD})\n"
    + "".join(f"  MIG 1g.20gb     Device  {n}: (UUID: {uuid})\n" for n, uuid in enumerate(SLICE_UUIDS))
    + "GPU 1: NVIDIA A100-SXM4-80GB (UUID: GPU-99999999-7d19-9063-b049-1e69664bb298)\n"
)
# Processes on two slices, told apart by their GPU and compute instance (the capture itself has none).
PROCESSES = """<processes>
    <process_info><gpu_instance_id>4</gpu_instance_id><compute_instance_id>0</compute_instance_id>
        <pid>4242</pid><type>C</type><process_name>python</process_name><used_memory>1024 MiB</used_memory>
    </process_info>
    <process_info><gpu_instance_id>6</gpu_instance_id><compute_instance_id>0</compute_instance_id>
        <pid>4343</pid><type>C</type><process_name>train</process_name><used_memory>2048 MiB</used_memory>
    </process_info>
</processes>"""


def with_processes() -> str:
    text = CAPTURE.read_text(encoding="utf-8")
    assert "<processes />" in text
    return text.replace("<processes />", PROCESSES)


def test_the_slices_follow_their_card_with_their_memory_and_processes() -> None:
    card, *slices = parse_nvidia_smi_xml(with_processes(), hostname="box").gpus

    assert card.mig_enabled and card.uuid == CARD and card.mig_index is None
    # The card's processes are all of its slices' processes.
    assert [p.pid for p in card.processes] == [4242, 4343]
    assert [(s.label, s.parent_uuid, s.index) for s in slices] == [
        ("0.0", CARD, 0),
        ("0.1", CARD, 0),
        ("0.2", CARD, 0),
        ("0.3", CARD, 0),
    ]
    # Without `nvidia-smi -L`: CUDA's legacy name, MIG-GPU-<card>/<gpu instance>/<compute instance>.
    assert [s.uuid for s in slices] == [f"MIG-{CARD}/{gi}/0" for gi in (3, 4, 5, 6)]
    assert all(s.mig_profile is None and s.utilization_gpu_pct is None for s in slices)
    assert [(s.memory_total_mib, s.memory_used_mib) for s in slices] == [(19968, 12)] * 4
    assert [[(p.pid, p.name, p.used_memory_mib) for p in s.processes] for s in slices] == [
        [],
        [(4242, "python", 1024)],
        [],
        [(4343, "train", 2048)],
    ]


def test_the_listing_is_read_for_every_mig_line_under_its_card() -> None:
    listing = parse_mig_listing(LISTING)

    assert sorted(listing) == [(CARD, n) for n in range(4)]
    assert listing[(CARD, 2)].uuid == SLICE_UUIDS[2]
    assert listing[(CARD, 2)].profile == "1g.20gb"


def test_the_listing_of_an_old_driver_with_legacy_uuids_is_read_too() -> None:
    old = f"GPU 0: A100-PCIE-40GB (UUID: {CARD})\n  MIG 3g.20gb Device 0: (UUID: MIG-{CARD}/1/0)\n"

    assert parse_mig_listing(old)[(CARD, 0)].uuid == f"MIG-{CARD}/1/0"


def _script(tmp_path: Path, xml: str, listing: str | None) -> str:
    (tmp_path / "query.xml").write_text(xml)
    list_branch = "echo 'Invalid combination of input arguments' >&2; exit 2"
    if listing is not None:
        list_branch = f"cat '{tmp_path / 'listing.txt'}'"
        (tmp_path / "listing.txt").write_text(listing)
    path = tmp_path / "nvidia-smi"
    path.write_text(
        "#!/bin/sh\n"
        f"echo \"$*\" >> '{tmp_path / 'calls'}'\n"
        f"case \"$1\" in -L) {list_branch};; *) cat '{tmp_path / 'query.xml'}';; esac\n"
    )
    path.chmod(0o755)
    return str(path)


def _calls(tmp_path: Path) -> list[str]:
    return (tmp_path / "calls").read_text().splitlines()


def test_sample_names_the_slices_from_nvidia_smi_l_and_runs_it_once_per_layout(tmp_path: Path) -> None:
    telemetry = NvidiaSmiTelemetry(_script(tmp_path, with_processes(), LISTING), proc_root=tmp_path / "proc")

    first = telemetry.sample()
    second = telemetry.sample()

    slices = [gpu for gpu in first.gpus if gpu.mig_index is not None]
    assert [s.uuid for s in slices] == SLICE_UUIDS
    assert {s.mig_profile for s in slices} == {"1g.20gb"}
    assert {s.name for s in slices} == {"NVIDIA A100-SXM4-80GB MIG 1g.20gb"}
    assert second == first
    assert _calls(tmp_path) == ["-q -x", "-L", "-q -x"]


def test_a_new_layout_runs_nvidia_smi_l_again(tmp_path: Path) -> None:
    executable = _script(tmp_path, with_processes(), LISTING)
    telemetry = NvidiaSmiTelemetry(executable, proc_root=tmp_path / "proc")
    telemetry.sample()
    # An admin repartitions: slice 3 is now GPU instance 7.
    (tmp_path / "query.xml").write_text(
        with_processes().replace("<gpu_instance_id>6</gpu_instance_id>", "<gpu_instance_id>7</gpu_instance_id>")
    )

    telemetry.sample()

    assert _calls(tmp_path) == ["-q -x", "-L", "-q -x", "-L"]


def test_without_nvidia_smi_l_the_slices_keep_their_legacy_names(tmp_path: Path) -> None:
    telemetry = NvidiaSmiTelemetry(_script(tmp_path, with_processes(), None), proc_root=tmp_path / "proc")

    host = telemetry.sample()
    telemetry.sample()

    slices = [gpu for gpu in host.gpus if gpu.mig_index is not None]
    assert [s.uuid for s in slices] == [f"MIG-{CARD}/{gi}/0" for gi in (3, 4, 5, 6)]
    assert all(s.mig_profile is None for s in slices)
    # The failure is remembered for this layout, not retried on every poll.
    assert _calls(tmp_path) == ["-q -x", "-L", "-q -x"]


def test_a_host_without_mig_never_runs_nvidia_smi_l(tmp_path: Path) -> None:
    plain = (CAPTURE.parent / "telegraf__tesla-t4.xml").read_text(encoding="utf-8")
    telemetry = NvidiaSmiTelemetry(_script(tmp_path, plain, LISTING), proc_root=tmp_path / "proc")

    telemetry.sample()

    assert _calls(tmp_path) == ["-q -x"]
