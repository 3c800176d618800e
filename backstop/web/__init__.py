"""Django helpers every app's HTML views share; below the domain apps, so it imports none of them."""
