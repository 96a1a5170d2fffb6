"""Streaming sample-rate conversion with a polyphase windowed-sinc filter.

The converter treats the rate change as a rational factor ``up / down`` and
computes each output sample as a dot product of the input around it with one
phase of a Kaiser-windowed sinc low-pass filter.  The filter's cutoff sits
below the lower of the two Nyquist frequencies, so downsampling does not alias
and upsampling does not image.  Input arrives in blocks of any size, and the
converter keeps only the samples that the next outputs still need, so memory
stays bounded however long the stream is.
"""

from __future__ import annotations

from math import ceil, gcd

import numpy as np
import numpy.typing as npt

#: Filter half-width, in zero crossings of the sinc at the cutoff frequency.
#: Sixteen gives a transition band of a few percent of the output rate.
ZERO_CROSSINGS = 16

#: Kaiser window shape parameter; 8.6 gives about 85 dB of stopband rejection.
KAISER_BETA = 8.6

#: Cutoff as a fraction of the lower Nyquist frequency, so that the transition
#: band ends before the Nyquist frequency instead of straddling it.
ROLLOFF = 0.94

FloatArray = npt.NDArray[np.float64]


class PolyphaseResampler:
    """Convert a mono stream of float samples from one rate to another.

    Parameters:
      input_rate: The input sample rate, in hertz.
      output_rate: The output sample rate, in hertz.

    Raises:
      ValueError: A rate is not a positive integer.

    Note:
      Feed blocks with :meth:`process` and call :meth:`flush` once at the end.
      The output is aligned with the input (no filter delay), and its length is
      ``ceil(input_samples * output_rate / input_rate)``.
    """

    def __init__(self, input_rate: int, output_rate: int) -> None:
        if input_rate <= 0 or output_rate <= 0:
            raise ValueError(
                f"Sample rates must be positive; got {input_rate} Hz and "
                f"{output_rate} Hz."
            )

        divisor = gcd(input_rate, output_rate)
        self.up = output_rate // divisor
        self.down = input_rate // divisor
        if self.up == self.down:
            # Equal rates: a unit impulse passes the input through unchanged,
            # where the low-pass filter would still cut the top of the band.
            self.half_width = 1
            self.phases = np.array([[0.0, 1.0]])
        else:
            self.half_width = ceil(ZERO_CROSSINGS * max(self.up, self.down) / self.up)
            self.phases = _filter_bank(self.up, self.down, self.half_width)
        self.offsets = np.arange(-self.half_width, self.half_width, dtype=np.int64)
        # The stream starts with zeros, so the first outputs see a filter window
        # that is full on both sides.
        self.buffer: FloatArray = np.zeros(self.half_width, dtype=np.float64)
        self.buffer_start = -self.half_width
        self.received = 0
        self.next_output = 0
        self.flushed = False

    def process(self, block: npt.ArrayLike) -> FloatArray:
        """Append input samples and return the output samples they complete.

        Parameters:
          block: One-dimensional input samples.

        Returns:
          The output samples whose filter window is now fully known; it may be
          empty.

        Raises:
          RuntimeError: :meth:`flush` was already called.
        """
        if self.flushed:
            raise RuntimeError("The resampler was flushed; create a new one.")

        samples = np.asarray(block, dtype=np.float64).reshape(-1)
        self.buffer = np.concatenate([self.buffer, samples])
        self.received += samples.size
        # Output k needs input up to floor(k * down / up) + half_width.
        available = self.buffer_start + self.buffer.size
        last = ((available - self.half_width) * self.up - 1) // self.down
        return self._emit(last + 1)

    def flush(self) -> FloatArray:
        """Return the remaining output samples, padding the input with silence.

        Returns:
          The last output samples of the stream.
        """
        if self.flushed:
            return np.zeros(0, dtype=np.float64)

        self.flushed = True
        padding = np.zeros(self.half_width + 1, dtype=np.float64)
        self.buffer = np.concatenate([self.buffer, padding])
        total = -(-self.received * self.up // self.down)
        return self._emit(total)

    def _emit(self, stop: int) -> FloatArray:
        """Compute outputs ``next_output`` to ``stop - 1`` and trim the buffer."""
        if stop <= self.next_output:
            return np.zeros(0, dtype=np.float64)

        indices = np.arange(self.next_output, stop, dtype=np.int64)
        upsampled = indices * self.down
        base = upsampled // self.up
        phase = upsampled % self.up
        # Row k gathers inputs base[k] + half_width ... base[k] - half_width + 1,
        # matching the order in which _filter_bank stores each phase.
        positions = base[:, None] - self.offsets[None, :] - self.buffer_start
        output = np.einsum("ij,ij->i", self.buffer[positions], self.phases[phase])

        self.next_output = stop
        keep_from = (stop * self.down) // self.up - self.half_width + 1
        drop = max(0, keep_from - self.buffer_start)
        self.buffer = self.buffer[drop:]
        self.buffer_start += drop
        return output


def _filter_bank(up: int, down: int, half_width: int) -> FloatArray:
    """Return the polyphase filter table, one row per phase of ``up``.

    Row ``p``, column ``j`` is the filter tap applied to input ``base - j`` for
    an output whose upsampled position is ``base * up + p``, with ``j`` running
    from ``-half_width`` to ``half_width - 1``.
    """
    offsets = np.arange(-half_width, half_width, dtype=np.float64)
    phases = np.arange(up, dtype=np.float64)
    # Distance from the output to each input, in upsampled samples.
    distance = phases[:, None] + offsets[None, :] * up
    widest = max(up, down)
    cutoff = ROLLOFF / widest
    taps = cutoff * np.sinc(cutoff * distance)
    span = half_width * up
    inside = np.clip(1.0 - (distance / span) ** 2, 0.0, None)
    taps *= np.i0(KAISER_BETA * np.sqrt(inside)) / np.i0(KAISER_BETA)
    # Each phase sums to one, so a constant input gives the same constant
    # output at every phase.  This removes the small gain ripple of the window.
    sums = taps.sum(axis=1, keepdims=True)
    return taps / sums
