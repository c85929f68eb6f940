# X-Paste's generated instance pool for LVIS v1, as in the paper's released pipeline:
# Stable Diffusion 1.5 (DPM-Solver++, 50 steps, guidance 7.5, 512x512, fp16 on CUDA), prompt
# "a photo of a single {name}", 100 images per category, best-of-N segmenters by CLIP ViT-L/14 score
# on a white background, filter with min_clip 21, area 0.05-0.95, tolerance 1.
#
#   xpaste-pool run configs/pool_builder/xpaste_lvis_sd15.py
#   torchrun --nproc-per-node 8 -m pool_builder run configs/pool_builder/xpaste_lvis_sd15.py
#   (SLURM: srun python -m pool_builder run ...; each task takes every n-th category)
#
# Every key and default is defined in pool_builder/options.py; ``xpaste-pool <stage> --help`` shows the
# same keys as flags. Relative outputs (``out``, ``xpaste_json``) are relative to work_dir, relative
# inputs (``file``, ``ann_file``, ``root``, model folders) to the current directory. The pool index ends
# up at <work_dir>/pool/pool_index.npz: point the training config's ``xpaste_pool_file`` there.
work_dir = 'data/xpaste_pool'
device = 'auto'
ann_file = 'data/lvis_v1/annotations/lvis_v1_train.json'

vocabulary = dict(
    file=ann_file,
    categories=None,                           # e.g. [1, 2, 3] to build a few categories first
    templates=['a photo of a single {name}'],  # X-Paste's prompt
    synonyms=False,                            # True: also prompt every LVIS synonym
    definitions=False,                         # True: also "<prompt>, <LVIS definition>"
    prompt_file=None)                          # JSON/TSV with many prompts per category

generate = dict(
    model='runwayml/stable-diffusion-v1-5',
    scheduler='DPMSolverMultistepScheduler',
    num_inference_steps=50,
    guidance_scale=7.5,
    height=512,
    width=512,
    dtype='auto',
    negative_prompt=None,
    images_per_category=100,
    batch_size=4,
    seed=0,
    safety_checker=True)

ingest = None  # dict(root='data/lvis_retrieved', source='retrieved') adds crawled images

segment = dict(
    segmenters=[
        dict(type='clipseg', model='CIDAS/clipseg-rd64-refined'),
        # BiRefNet publishes its architecture as repository code (trust_remote_code); pin a revision.
        dict(type='birefnet', model='ZhengPeng7/BiRefNet', revision=None),
        dict(type='grabcut'),
    ],
    batch_size=8)

score = dict(model='ViT-L-14', pretrained='openai', precision='auto', batch_size=32)

filter = dict(min_clip=21.0, min_area=0.05, max_area=0.95, tolerance=1.0, workers=0,  # 0: all cores
              segmenters=None, overwrite=False, xpaste_json='pool/xpaste_pool.json')

# Relative to work_dir: data/lvis_v1/metadata/category_stats.json, where the LVIS training configs read
# the size prior (XPasteCopyPaste) and the federated-loss image counts.
stats = dict(ann_file=ann_file, out='../lvis_v1/metadata/category_stats.json')

inspect = dict(min_instances=10, per_sheet=48, out='report')
