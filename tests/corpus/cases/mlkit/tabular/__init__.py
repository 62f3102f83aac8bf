"""scikit-learn compatible estimators."""
