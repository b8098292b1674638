"""The four classes, in the order every model's output uses."""

from __future__ import annotations

CLASS_NAMES: tuple[str, ...] = ("glioma", "meningioma", "no_tumor", "pituitary")

# The data set's folder names; folders already named by label (the portal's export) work too.
FOLDER_TO_LABEL: dict[str, str] = {
    "glioma_tumor": "glioma",
    "meningioma_tumor": "meningioma",
    "no_tumor": "no_tumor",
    "pituitary_tumor": "pituitary",
    **{label: label for label in CLASS_NAMES},
}
