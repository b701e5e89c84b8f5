"""Vehicle scoring, VIN decoding and checks, run reports and the delisting gate."""
