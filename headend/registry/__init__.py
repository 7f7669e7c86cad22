"""Registry import: houses, accounts and meters from the files utilities keep."""
