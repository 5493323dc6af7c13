"""What the command lines share: the console (TensorFlow's start-up noise filtered, exit codes),
their error kinds and path handling. Light: no TensorFlow or Beam imports, so a CLI can act
before they load."""
