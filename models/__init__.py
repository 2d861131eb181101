"""The model zoo: every family is registered once (models/registry.py) and built with
``build_model(cfg)`` from a ``ModelConfig`` or an options namespace.

Families (``--backbone_net``): resnet (TSN/TAM/TSM), i3d_resnet, s3d_resnet, r3d, mc3, r2plus1d
(models/resnet.py), inception_v1 (TSN/TAM/TSM), i3d, s3d (models/inception.py).
"""
from models.config import ModelConfig
from models.registry import FAMILIES, MODELS, build_model, family, register
from models import inception, resnet  # noqa: F401  (their @register lines fill FAMILIES)
from models.complexity import count_conv_macs, count_params
from models.weights import load_imagenet, load_pretrained

__all__ = ['FAMILIES', 'MODELS', 'ModelConfig', 'build_model', 'family', 'register',
           'count_conv_macs', 'count_params', 'load_pretrained', 'load_imagenet']
