"""The kit's name lists, with no import behind them: the settings (collab_lib.config) offer them as
choices without loading torch, timm or the scene generator.

Each heavy module takes its list from here and maps each name to what builds it (collab_lib.data's
DATASETS, collab_lib.models' STUDENTS); tests/test_train_config.py checks that the maps and these
lists agree, name for name and in order.
"""

DATASET_NAMES = ("streets", "cityscapes", "camvid", "voc", "folder")
METHODS = ("independent", "dml", "kdcl", "collab")
CNN_STUDENTS = ("deeplabv3plus_resnet18", "deeplabv3plus_mobilenetv2", "deeplabv3plus_resnet50")
VIT_STUDENTS = ("segformer_b0", "segformer_b1", "segformer_b2")
STUDENT_NAMES = CNN_STUDENTS + VIT_STUDENTS
