// placeholder: filled in by its test author
