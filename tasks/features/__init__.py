"""Audio features of a clip: Lip2Wav's mel (and its inverse), MFEC cubes, the speechpy fix."""
