"""Which frames each Wan-Animate segment generates.

The model works on segments of S = 4k+1 frames (77 in training: 20 latent
frames + the reference = the token count of 81-frame Wan). Each segment after
the first starts with the last P (1 or 5) frames of the previous one as known
frames, so it adds S - P new frames.

Planned here rather than by the pipeline because the pipeline's own plan
(``num_segments = target // (S - P)``) miscounts when S - P is small (P=5,
S=9 crashes), pads a 5-frame shot to 77 frames unless told otherwise, and
cannot do a one-frame shot. Our plan: a short shot is one segment of the
smallest 4k+1 >= its length; the last segment of a long shot is shortened the
same way instead of padded to S.
"""
from __future__ import annotations

from dataclasses import dataclass

TEMPORAL_STRIDE = 4          # AutoencoderKLWan: 4 frames per latent frame after the first
TRAINED_SEGMENT = 77
CARRY_CHOICES = (1, 5)


@dataclass(frozen=True)
class Segment:
    index: int
    start: int        # first shot frame the segment covers (carried ones included)
    length: int       # frames the model runs on (4k+1, may pass the shot's end: padded)
    carried: int      # leading frames taken from the previous segment's output (0 for the first)
    end: int          # one past the last shot frame it covers

    @property
    def new_frames(self) -> range:
        """Shot frames this segment emits."""
        return range(self.start + self.carried, self.end)


def smallest_valid_length(n: int) -> int:
    """The smallest 4k+1 >= n."""
    n = max(1, int(n))
    return n if (n - 1) % TEMPORAL_STRIDE == 0 else ((n - 1) // TEMPORAL_STRIDE + 1) * TEMPORAL_STRIDE + 1


def is_valid_length(s: int) -> bool:
    return s >= 1 and (s - 1) % TEMPORAL_STRIDE == 0


def plan_segments(frames: int, segment_length: int = TRAINED_SEGMENT, carried: int = 5) -> list[Segment]:
    if frames < 1:
        raise ValueError(f"a shot has at least 1 frame, got {frames}")
    if not is_valid_length(segment_length):
        raise ValueError(f"segment_length must be 4k+1 (5, 9, ..., 77), got {segment_length}")
    if carried not in CARRY_CHOICES:
        raise ValueError(f"carried frames must be 1 or 5, got {carried}")
    if frames <= segment_length:
        return [Segment(0, 0, smallest_valid_length(frames), 0, frames)]
    if segment_length <= carried:
        raise ValueError(f"segment_length ({segment_length}) must be larger than the carried frames ({carried})")
    segments = [Segment(0, 0, segment_length, 0, segment_length)]
    step = segment_length - carried
    while segments[-1].end < frames:
        start = segments[-1].end - carried
        remaining = frames - start
        length = segment_length if remaining >= segment_length else smallest_valid_length(remaining)
        segments.append(Segment(len(segments), start, length, carried, min(start + length, frames)))
        assert start == len(segments[:-1]) * step
    return segments
