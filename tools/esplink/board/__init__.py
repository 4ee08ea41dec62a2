"""The virtual board: the firmware's own .mpy files on the 32-bit MicroPython VM, with
stand-ins for what the VM lacks that keep each chip's limits (`--chip`).

deploy: build, ROMFS images, provisioning; process: the boot loop, the watchdogs, event
lines, the control client; cli: `esplink board run | press`; standins/: what runs on the VM.
"""
