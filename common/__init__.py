"""Small helpers shared by every openwit stage: Beam runner defaults, CLI errors, atomic writes, hashing."""
