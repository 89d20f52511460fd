# Per-feature host helpers: one module per firmware feature (firmware/features/<name>/),
# holding what the harness needs to drive and check it (wrappers of the feature's ops and
# tables, its demo, its host-side devices such as the tape drive).  The core harness
# (rig, link, drives, hostio, fabric, trace) never imports from here.
