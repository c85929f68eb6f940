"""Dense (proposal) heads of the CenterNet2 (X-Paste/Detic variant) detector."""
from .centernet_proposal_head import CenterNetProposalHead

__all__ = ['CenterNetProposalHead']
