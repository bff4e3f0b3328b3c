"""Reading media: probe, decode, resample by time, audio at 16 kHz, one-pass demux, 4:2:0 frames."""
