"""The notebook side: the control panel, its live plots, and the HTML report."""
