#!/usr/bin/env node
import { main } from '../dist/cmd/stats.js';
main(process.argv.slice(2));
