"""The model zoo: every family is registered by name and built with ``build_model(args)``.

Families (``--backbone_net``): resnet (TSN/TAM/TSM), i3d_resnet, s3d_resnet, r3d, mc3, r2plus1d,
inception_v1 (TSN/TAM), i3d, s3d.
"""
from models.registry import MODELS, build_model, register
from models import resnet  # noqa: F401  (registers the ResNet families)
from models.complexity import count_conv_macs, count_params
from models.weights import load_imagenet, load_pretrained

try:  # the Inception families (i3d, s3d, inception_v1)
    from models import inception  # noqa: F401
except ImportError:  # pragma: no cover
    pass

__all__ = ['MODELS', 'build_model', 'register', 'count_conv_macs', 'count_params',
           'load_pretrained', 'load_imagenet']
