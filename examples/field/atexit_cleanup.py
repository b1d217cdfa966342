"""Each job registers its cleanup with atexit and never unregisters it: the
callbacks (and the jobs they hold) stay until the process exits."""
import atexit


class Job:
    def __init__(self, n):
        self.n = n
        self.buffer = bytearray(256)

    def cleanup(self):
        self.buffer = None


_count = [0]


def step():
    _count[0] += 1
    job = Job(_count[0])
    atexit.register(job.cleanup)
