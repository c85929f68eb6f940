"""Run a detector on an image or a folder and draw masks, boxes and category names.

    python tools/image_demo.py demo.jpg CONFIG --weights CKPT --device cuda:0 --pred-score-thr 0.3 \
        --out-dir outputs/demo

Drawn images go to OUT_DIR/vis/, predictions (JSON) to OUT_DIR/preds/ unless --no-save-pred.
A thin wrapper over MMDetection's DetInferencer, so its arguments mean the same.
"""
import argparse

from xpaste_mm.apis.inference import run_image_demo


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('inputs', help='image file or folder of images')
    parser.add_argument('model', help='config file')
    parser.add_argument('--weights', default=None, help='checkpoint file (converted X-Paste or ours)')
    parser.add_argument('--device', default='cpu', help='cpu, cuda or cuda:N')
    parser.add_argument('--pred-score-thr', type=float, default=0.3, help='draw boxes above this score')
    parser.add_argument('--out-dir', default='outputs', help='output folder')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--no-save-vis', action='store_true', help='do not write drawn images')
    parser.add_argument('--no-save-pred', action='store_true', help='do not write prediction JSON')
    parser.add_argument('--palette', default='random', help="'coco', 'random' or 'none'")
    return parser.parse_args(argv)


if __name__ == '__main__':
    args = parse_args()
    run_image_demo(args.inputs, args.model, weights=args.weights, device=args.device,
                   score_thr=args.pred_score_thr, out_dir=args.out_dir, batch_size=args.batch_size,
                   save_vis=not args.no_save_vis, save_pred=not args.no_save_pred, palette=args.palette)
