_rows = []


def add(row):
    _rows.append(row)
