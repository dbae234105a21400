"""The one schema every aduan data source is mapped onto.

Training, evaluation, serving and the benchmarks all read complaints through
`data.load.load_complaints`, which turns any supported source into a
`datasets.Dataset` with exactly these columns. Keeping the names here (and only
here) means a renamed column is a one-line change and no module guesses at
another module's field names.

Columns of a loaded dataset, in this order:

- `id` (str): unique per dataset; generated as `<file-stem>-<row index>` when
  the source has none.
- `text` (str): the complaint, normalised with `data.text.normalize_text`;
  never empty.
- `created_at` (str, ISO 8601, or None): when the complaint was filed; needed
  for the time split.
- one column per requested label (str or None), e.g. `agency`, `topic`, or
  IndoNLU's `label`.
- the `LOCATION_FIELDS` (str or None): filled with None when the source lacks them.
"""

from __future__ import annotations

TEXT = "text"
ID = "id"
CREATED_AT = "created_at"

#: Where a complaint is about; kept so routing and duplicate detection can use
#: them. Sources without them get None, so every dataset has the same columns.
LOCATION_FIELDS: tuple[str, ...] = ("city", "kecamatan", "kelurahan", "address", "region_code")

#: The labels aduan predicts for complaints: the responsible agency and the topic.
STANDARD_LABELS: tuple[str, ...] = ("agency", "topic")


class DataError(ValueError):
    """A problem with input data, worded for the person who supplied it.

    The message is shown to users as is (the CLI prints it without a
    traceback), so it always names the file, and the line or row where one is
    to blame, and says what to do. It never quotes complaint text: the corpora
    hold real personal data (names, NIK numbers, phone numbers, addresses),
    and error messages end up in logs and CI output.
    """
