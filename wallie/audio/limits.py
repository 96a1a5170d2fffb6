"""Default limits on the audio files that transcribers accept.

Over the size limit a file is rejected before decoding.  Over the duration
limit it is rejected whole, with no partial transcript, because a truncated
transcript of a long call could drop the promise that a reminder depends on.
The error message asks the operator to raise the limit or split the file.
"""

from __future__ import annotations

#: Longest accepted audio, in seconds.  Voice notes last minutes; an hour
#: leaves room for recorded calls and bounds the worker time that one file takes.
DEFAULT_MAX_DURATION_S = 3600.0

#: Largest accepted file, in bytes (700 MiB).  One hour of 48 kHz 16-bit stereo
#: WAV is 691.2 MB, so an uncompressed file within the duration limit passes
#: and the duration limit is the one that rejects long recordings.
DEFAULT_MAX_SIZE_BYTES = 700 * 1024 * 1024
