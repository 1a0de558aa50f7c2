"""One ``APIRouter`` per resource: routing, feedback, model (and admin reload), health, pages."""
