"""The classes of the synthetic streets: names, ids and (Cityscapes) colours."""

import numpy as np

CLASS_NAMES = ["road", "sidewalk", "building", "fence", "pole", "traffic sign",
               "vegetation", "terrain", "sky", "person", "car"]
ROAD, SIDEWALK, BUILDING, FENCE, POLE, SIGN, VEGETATION, TERRAIN, SKY, PERSON, CAR = range(11)
IGNORE = 255
PALETTE = np.array([  # Cityscapes colours for the same classes
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (190, 153, 153), (153, 153, 153), (220, 220, 0),
    (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60), (0, 0, 142)], np.uint8)
