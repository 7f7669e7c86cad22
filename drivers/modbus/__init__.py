"""Modbus RTU / TCP: register maps (configs/models/*.yaml), value codec, read
coalescing, I/O-free frames, the driver and a protocol-true simulator."""
