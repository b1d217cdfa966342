"""A steady workload: allocates and frees, keeps nothing."""


def run():
    data = [bytes(1000) for _ in range(500)]
    table = {i: str(i) for i in range(500)}
    return len(data) + len(table)
