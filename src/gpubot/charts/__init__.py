"""Charts drawn as PNG images, each in a short-lived child process: matplotlib never enters the daemon's memory."""
