"""``ssdlib bench``'s ``configure(parser)`` and ``run(args)``, the two functions every sub-command
module gives the dispatcher (:mod:`ssdlib.cli`): flags in, sizes chosen, the report measured and written."""

from __future__ import annotations

from dataclasses import replace

from ssdlib.bench.device import device_name
from ssdlib.bench.report import SECTIONS, markdown, measure, write
from ssdlib.bench.sizes import SSD_WORKERS, BenchSizes
from ssdlib.experiment import resolve_device
from ssdlib.log import get as get_logger
from ssdlib.project import OUTPUTS_DIR

LOG = get_logger(__name__)


def configure(parser) -> None:
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that everything runs, in seconds")
    parser.add_argument("--device", default="auto", help="auto (the GPU if one is visible), cpu or cuda[:N]")
    parser.add_argument("--output-dir", help="where bench.json and bench.md go (default: the project's outputs/bench)")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help=f"DataLoader workers of the SSD-style pipeline (default: SSD's {SSD_WORKERS})",
    )
    parser.add_argument("--no-compile", action="store_true", help="on CUDA, time ssdlib without torch.compile only")
    parser.add_argument(
        "--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {', '.join(SECTIONS)} (default: all)"
    )


def run(args) -> int:
    """``ssdlib bench``: measure, print the tables, write bench.json and bench.md."""
    sections = [name.strip() for name in args.sections.split(",") if name.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        LOG.error(f"[bench] unknown section(s) {', '.join(unknown)}: choose from {', '.join(SECTIONS)}")
        return 2
    device = resolve_device(args.device)
    sizes = BenchSizes.quick() if args.quick else BenchSizes.for_device(device)
    if args.workers is not None:
        sizes = replace(sizes, workers=args.workers)
    if args.no_compile:
        sizes = replace(sizes, compile=False)
    LOG.info(f"[bench] {device_name(device)}: {'quick run' if args.quick else 'full run'}")
    output_dir = args.output_dir or OUTPUTS_DIR / "bench"
    report = measure(
        device,
        sizes,
        quick=args.quick,
        sections=sections,
        log=lambda m: LOG.info(f"[bench] {m}"),
        save=lambda partial: write(partial, output_dir),
    )
    paths = write(report, output_dir)
    LOG.info(markdown(report))
    LOG.info(f"[bench] written: {paths[0]} and {paths[1]}")
    return 0
