"""Audio features of a clip: Lip2Wav's mel and its inverse (mel), MFEC cubes (mfec)."""
