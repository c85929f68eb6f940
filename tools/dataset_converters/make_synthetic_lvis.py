"""Write a deterministic synthetic LVIS v1 dataset (images + annotations) for tests and demos.

    python tools/dataset_converters/make_synthetic_lvis.py data/synthetic_lvis --num-train 16 --seed 0
"""
import argparse

from xpaste_mm.datasets import make_synthetic_lvis


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out_dir', help='dataset root to write (train2017/, val2017/, annotations/)')
    parser.add_argument('--num-train', type=int, default=16, help='training images')
    parser.add_argument('--num-val', type=int, default=8, help='validation images')
    parser.add_argument('--num-categories', type=int, default=8, help='categories (ids 1..K)')
    parser.add_argument('--height', type=int, default=240, help='maximum image height (px)')
    parser.add_argument('--width', type=int, default=320, help='maximum image width (px)')
    parser.add_argument('--max-objects', type=int, default=6, help='maximum objects per image')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    data = make_synthetic_lvis(args.out_dir, num_train=args.num_train, num_val=args.num_val,
                               num_categories=args.num_categories, image_size=(args.height, args.width),
                               max_objects=args.max_objects, seed=args.seed)
    print(f'wrote {data.train_ann} and {data.val_ann} ({len(data.class_names)} categories)')


if __name__ == '__main__':
    main()
