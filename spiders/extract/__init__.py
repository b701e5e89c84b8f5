"""Pure extraction functions: from a page's text and URL to VehicleItems. No crawling here."""
