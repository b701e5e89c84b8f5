"""Jobs: Dramatiq broker and actors, the service the CLI and API call, scheduler, reaper."""
