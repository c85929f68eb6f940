# As lvis_v1_instance_rfs-lsj-640.py with the Swin-L training size T = 896 (test resize unchanged).
_base_ = './lvis_v1_instance_rfs-lsj-640.py'
train_size = 896
train_pipeline = [dict(t, scale=(train_size, train_size)) if t.type == 'RandomResize' else
                  dict(t, crop_size=(train_size, train_size)) if t.type == 'RandomCrop' else t
                  for t in _base_.train_pipeline]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
