"""The exchange file formats billing systems read and write, as pure codecs (bytes in,
dataclasses out, no database): АТС 80020 XML, the hourly profile and integral readings
xlsx templates of the customer cabinet, CSV. Every problem in a file is an `Issue`
with where, what and how to fix (errors.py)."""
