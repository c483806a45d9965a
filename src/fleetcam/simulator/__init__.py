"""A device simulator: virtual MDVRs speaking JT/T 808 and JT/T 1078 to a gateway."""
