"""provd: provisions third-party SIP phones on an innovaphone PBX, as an App Service."""

__version__ = "0.1.0"
