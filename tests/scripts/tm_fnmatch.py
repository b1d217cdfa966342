"""Random (name, pattern) pairs and fnmatch.fnmatch's verdicts, for
tracemalloc_test's check of leakguard's port. The verdict is None where
this Python raises (3.9 rejects reversed ranges such as '[z-a]')."""

import fnmatch
import random
import warnings

ALPHABET = "ab-!]^[\\*?&~|/.z\u00e9"


def cases(seed, n):
    rng = random.Random(seed)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(n):
            pattern = "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(0, 8)))
            name = "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(0, 6)))
            try:
                verdict = fnmatch.fnmatch(name, pattern)
            except Exception:  # re.error on 3.9
                verdict = None
            out.append((name, pattern, verdict))
    return out
