"""The engine's version: a checkpoint or preset from another version may train differently."""

ENGINE_VERSION = "0.1.0"
