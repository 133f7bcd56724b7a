"""Plain nn.Modules shared by the tasks (no Lightning): attention, spatial transformer, encoders, decoders."""
