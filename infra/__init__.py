"""Local platform: the emulator stack launcher and deployment assets."""
