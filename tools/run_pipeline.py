"""The whole X-Paste pipeline in one command, offline on an embedded default (no GPU, no downloads).

    python tools/run_pipeline.py                       # synthetic data + tiny models, CPU, about 2 min
    python tools/run_pipeline.py --quick               # reduced sizes (about a minute)
    python tools/run_pipeline.py --device cuda --sd-model runwayml/stable-diffusion-v1-5 \
        --clip-model ViT-L-14 --clip-pretrained openai --segmenter grabcut --segmenter clipseg

Writes data, the pool (with its inspection report), pasted-sample previews, the trained checkpoint,
LVIS metrics and drawn predictions under --out-dir, and links them from OUT_DIR/summary.md.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the demo driver lives beside this script
from pipeline_demo import DemoOptions, run_demo  # noqa: E402


def parse_args(argv=None) -> DemoOptions:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out-dir', type=Path, default=Path('outputs/xpaste_demo'))
    parser.add_argument('--quick', action='store_true', help='reduced sizes for a smoke test')
    parser.add_argument('--device', default='cpu', help="'cpu', 'cuda' or 'auto' (pool stages)")
    parser.add_argument('--iters', type=int, help='training iterations (default 600, quick 12)')
    parser.add_argument('--num-train', type=int, help='synthetic training images')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--threads', type=int, help='torch/OpenMP threads per process (default: the usable '
                                                    'cores not already busy, 1 to 4)')
    parser.add_argument('--clip-model', help='open_clip model name or local folder (default: tiny local)')
    parser.add_argument('--clip-pretrained', help='open_clip pretrained tag, e.g. openai')
    parser.add_argument('--segmenter', action='append', dest='segmenters',
                        help='pool_builder segmenter spec, repeatable (default: grabcut)')
    parser.add_argument('--sd-model', help='diffusers text-to-image hub id or local path: generate pool '
                                           'images instead of rendering synthetic objects')
    parser.add_argument('--sd-steps', type=int, default=50, help='inference steps with --sd-model')
    args = parser.parse_args(argv)
    overrides = dict(out_dir=args.out_dir, device=args.device, seed=args.seed, clip_model=args.clip_model,
                     clip_pretrained=args.clip_pretrained, sd_model=args.sd_model, sd_steps=args.sd_steps)
    if args.segmenters:
        overrides['segmenters'] = tuple(args.segmenters)
    if args.threads is not None:
        overrides['threads'] = args.threads
    if args.iters is not None:
        overrides['train_iters'] = args.iters
    if args.num_train is not None:
        overrides['num_train'] = args.num_train
    return DemoOptions.quick(**overrides) if args.quick else DemoOptions(**overrides)


if __name__ == '__main__':
    run_demo(parse_args())
