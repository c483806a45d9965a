"""fleetcam: an open-source video-telematics backend."""
__version__ = "0.1.0"
