"""Faces: detection, tracking, face and mouth crops (RGB and 4:2:0), the ``track`` overlay video."""
