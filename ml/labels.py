"""Class names and how dataset folder names map onto them (stdlib only)."""

from __future__ import annotations

# The order is the model's output order; metadata.json records it per artefact.
CLASS_NAMES: tuple[str, ...] = ("glioma", "meningioma", "no_tumor", "pituitary")

FOLDER_TO_LABEL: dict[str, str] = {
    "glioma_tumor": "glioma",
    "meningioma_tumor": "meningioma",
    "no_tumor": "no_tumor",
    "pituitary_tumor": "pituitary",
}


def label_for_folder(folder_name: str) -> str | None:
    """Return the label for a class folder, or None when the folder is not a class.

    Accepts the public data set's names (`glioma_tumor`) and the portal export's,
    which are the labels themselves (`glioma`).
    """
    if folder_name in FOLDER_TO_LABEL:
        return FOLDER_TO_LABEL[folder_name]
    if folder_name in CLASS_NAMES:
        return folder_name
    return None
