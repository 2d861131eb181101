"""A picture of training clips as the model gets them, for TensorBoard: a broken data pipeline
(wrong crops, flips, channel order, frame order, flow stacking) is seen at a glance."""
import torch


MAX_CLIPS = 4            # rows of the grid: enough to see a pipeline's mistake, small to store


def clip_grid(clips: torch.Tensor, mean=None, std=None, modality: str = 'rgb',
              max_clips: int = MAX_CLIPS, sep: int = 2) -> torch.Tensor:
    """A (3, H', W') uint8 image of the first `max_clips` clips of a (B, C, T, H, W) batch: a
    row a clip, a column a frame, `sep` white pixels between rows and columns.

    uint8 clips (as the loader yields them, before utils.transforms.normalize) are shown as
    they are; float clips are taken as normalised and de-normalised with the per-channel `mean`
    and `std` (0-1 scale). rgb: the frame itself. flow (channels x0 y0 x1 y1 ...): the first
    x/y pair of each frame's stack, as two grey columns, x then y (128 is no motion), so a
    row has 2T columns.
    """
    if clips.dim() != 5:
        raise ValueError(f'expected a (B, C, T, H, W) batch, got shape {tuple(clips.shape)}')
    x = clips[:max_clips].detach().cpu()
    if x.is_floating_point():
        if mean is None or std is None:
            raise ValueError('normalised (float) clips need the mean and std to show them')
        shape = (-1, 1, 1, 1)
        x = x.float() * torch.as_tensor(std, dtype=torch.float32).view(shape) \
            + torch.as_tensor(mean, dtype=torch.float32).view(shape)
        x = x.mul_(255).round_().clamp_(0, 255).to(torch.uint8)
    if modality == 'flow':
        b, _, t, h, w = x.shape
        x = x[:, :2].transpose(1, 2).reshape(b, 1, 2 * t, h, w).expand(b, 3, 2 * t, h, w)
    elif x.shape[1] != 3:
        raise ValueError(f'rgb clips have 3 channels, got {x.shape[1]}')
    b, c, t, h, w = x.shape
    # Each frame in a cell padded with `sep` white pixels right and below; the last row's and
    # column's padding is cut off.
    cells = torch.full((b, c, t, h + sep, w + sep), 255, dtype=torch.uint8)
    cells[..., :h, :w] = x
    grid = cells.permute(1, 0, 3, 2, 4).reshape(c, b * (h + sep), t * (w + sep))
    return grid[:, :b * (h + sep) - sep, :t * (w + sep) - sep].contiguous()
